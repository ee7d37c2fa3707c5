// BentoCache 1.6.1 L1-hit cost, the baseline of SPEC §9: `get` and
// `getOrSet` on 1 000 hot keys held in its memory (L1) driver, on an
// L1-only store and on a tiered store (L1 + Redis L2, as SPEC §9's
// "tiered get"); every measured call is an L1 hit.
// Run: npm install --no-audit --no-fund && node l1_hit.mjs
// (BENTO_REDIS_URL, default redis://127.0.0.1:6379; without a reachable
// Redis only the L1-only store is measured.)
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisDriver } from 'bentocache/drivers/redis'

const KEYS = 1000
const ROUNDS = 5
const OPS = 200_000
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`)

async function measure(name, op) {
  const results = []
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < OPS; i++) await op(keys[i % KEYS])
    results.push(Number(process.hrtime.bigint() - start) / OPS)
  }
  results.sort((a, b) => a - b)
  console.log(`bentocache ${name}: median ${results[ROUNDS >> 1].toFixed(0)} ns/op (${ROUNDS} rounds of ${OPS})`)
}

async function run(label, store) {
  const bento = new BentoCache({ default: 'cache', prefix: `bench_node_${process.pid}`, stores: { cache: store } })
  for (const key of keys) await bento.set({ key, value: 'x'.repeat(100), ttl: '1h' })
  await measure(`get (L1 hit, ${label})`, (key) => bento.get({ key }))
  await measure(`getOrSet (L1 hit, ${label})`, (key) => bento.getOrSet({ key, factory: () => 'never', ttl: '1h' }))
  await bento.clear()
  await bento.disconnectAll()
}

await run('L1-only store', bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })))

const url = new URL(process.env.BENTO_REDIS_URL ?? 'redis://127.0.0.1:6379')
const connection = { host: url.hostname, port: Number(url.port || 6379), lazyConnect: false, maxRetriesPerRequest: 1 }
try {
  await run(
    'tiered store L1 + Redis L2',
    bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })).useL2Layer(redisDriver({ connection })),
  )
} catch (error) {
  console.log(`SKIP tiered store: Redis unreachable at ${url} (${error.message})`)
}
