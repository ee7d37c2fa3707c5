// BentoCache 1.6.1 L1-hit cost, the baseline of SPEC §9: `get` and
// `getOrSet` on 1 000 hot keys held in its memory (L1) driver.
// Run: npm install --no-audit --no-fund && node l1_hit.mjs
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'

const KEYS = 1000
const ROUNDS = 5
const OPS = 200_000

const bento = new BentoCache({
  default: 'cache',
  stores: { cache: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })) },
})

const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`)
for (const key of keys) await bento.set({ key, value: 'x'.repeat(100), ttl: '1h' })

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

await measure('get (L1 hit)', (key) => bento.get({ key }))
await measure('getOrSet (L1 hit)', (key) => bento.getOrSet({ key, factory: () => 'never', ttl: '1h' }))
await bento.disconnectAll()
