-- The index on block_maps(hash) served only the block collector, a periodic
-- background job, yet every launch, CreateImage and CopyImage paid for it on
-- each copied map row: measured (docs/benchmarks.md) 16,384 rows copied in
-- 210-280 ms plus a 120-190 ms commit with it, 30-60 ms plus 5-20 ms without.
-- The collector now scans and sorts instead; copies stay proportional to the
-- map alone.
DROP INDEX block_maps_hash;
