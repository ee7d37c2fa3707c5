// One round of BentoCache 1.6.1 L1 hits for `scripts/bench.sh compare`
// (the Rust harness starts one Node process per round, interleaved with
// its own subjects). Prints one JSON line per operation:
// {"label", "ops", "wall_ns", "cpu_ns"}; cpu_ns is process.cpuUsage()
// (user + system) over the measured loop. Usage: node round.mjs [ops]
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'

const KEYS = 1000
const OPS = Number(process.argv[2] ?? 100_000)
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`)

async function measure(label, op) {
  // Warm the JIT on the same loop first.
  for (let i = 0; i < OPS; i++) await op(keys[i % KEYS])
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  for (let i = 0; i < OPS; i++) await op(keys[i % KEYS])
  const wall = Number(process.hrtime.bigint() - start)
  const used = process.cpuUsage(cpu)
  console.log(JSON.stringify({ label, ops: OPS, wall_ns: wall, cpu_ns: (used.user + used.system) * 1000 }))
}

const bento = new BentoCache({
  default: 'cache',
  prefix: `bench_node_${process.pid}`,
  stores: { cache: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })) },
})
const strings = bento.namespace('strings')
const objects = bento.namespace('objects')
for (const [i, key] of keys.entries()) {
  await strings.set({ key, value: `value of ${key}`, ttl: '1h' })
  await objects.set({ key, value: { id: i, name: `user number ${i}` }, ttl: '1h' })
}
await measure('BentoCache get (string)', (key) => strings.get({ key }))
await measure('BentoCache getOrSet (string)', (key) => strings.getOrSet({ key, factory: () => 'never', ttl: '1h' }))
await measure('BentoCache get (object)', (key) => objects.get({ key }))
await measure('BentoCache getOrSet (object)', (key) =>
  objects.getOrSet({ key, factory: () => ({ id: 0, name: 'never' }), ttl: '1h' }),
)
await bento.disconnectAll()
