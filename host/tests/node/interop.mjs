// The BentoCache 1.6.1 side of host/tests/node_interop.rs: a long-lived
// process driven over stdin/stdout, one JSON object per line each way, so
// its L1 (memory) state persists between the steps of a scenario.
//
// Run: node interop.mjs '<config json>'
//   config = { "redis": "redis://127.0.0.1:6379",
//              "stores": { "<name>": { "prefix": "...", "l1": true, "bus": true } } }
// Command: { "id": 1, "op": "get|set|delete|deleteByTag|busReceived|numsub",
//            "store": "<name>", "namespace": "posts"?, "key", "value", "ttl", "tags", "channel" }
// Reply:   { "id": 1, "ok": true, "found": bool, "value": any }  or  { "id": 1, "ok": false, "error": "..." }
// A first line { "ready": true } is written once every store is built.
import { createInterface } from 'node:readline'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver, redisBusDriver } from 'bentocache/drivers/redis'
import { Redis } from 'ioredis'

const config = JSON.parse(process.argv[2])
// ioredis options from the URL: redisBusDriver spreads `connection`, so it
// must be an object, not a URL string.
const url = new URL(config.redis)
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
  ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  ...(url.pathname.length > 1 ? { db: Number(url.pathname.slice(1)) } : {}),
}
const stores = {}
for (const [name, store] of Object.entries(config.stores)) {
  let built = bentostore({ prefix: store.prefix })
  if (store.l1) built = built.useL1Layer(memoryDriver({ maxItems: 1000 }))
  built = built.useL2Layer(redisDriver({ connection }))
  if (store.bus) built = built.useBus(redisBusDriver({ connection }))
  stores[name] = built
}
const bento = new BentoCache({ default: Object.keys(stores)[0], stores })

// Bus messages from other instances, counted once applied to L1.
let busReceived = 0
bento.on('bus:message:received', () => busReceived++)

const admin = new Redis(connection)

function cache(command) {
  const store = bento.use(command.store)
  return command.namespace ? store.namespace(command.namespace) : store
}

async function run(command) {
  switch (command.op) {
    case 'get': {
      const value = await cache(command).get({ key: command.key })
      return value === undefined ? { found: false } : { found: true, value }
    }
    case 'set':
      await cache(command).set({ key: command.key, value: command.value, ttl: command.ttl, tags: command.tags })
      return {}
    case 'delete':
      return { value: await cache(command).delete({ key: command.key }) }
    case 'deleteByTag':
      return { value: await cache(command).deleteByTag({ tags: command.tags }) }
    case 'busReceived':
      return { value: busReceived }
    case 'numsub': {
      const [, count] = await admin.pubsub('NUMSUB', command.channel)
      return { value: Number(count) }
    }
    default:
      throw new Error(`unknown op ${command.op}`)
  }
}

// Building a store subscribes its bus: do it before saying ready.
for (const name of Object.keys(stores)) bento.use(name)
process.stdout.write(JSON.stringify({ ready: true }) + '\n')

// Commands run one at a time, in order.
const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  const command = JSON.parse(line)
  let reply
  try {
    reply = { id: command.id, ok: true, ...(await run(command)) }
  } catch (error) {
    reply = { id: command.id, ok: false, error: String(error?.stack ?? error) }
  }
  process.stdout.write(JSON.stringify(reply) + '\n')
}
await bento.disconnectAll()
await admin.quit()
