// Keeps a live set of LIVE_MIB (default 215) MiB of JavaScript objects,
// then prints "done". In a 256 MiB container V8's own heap limit lets it
// grow until the kernel's OOM killer ends it (137, no word in the log);
// with --max-old-space-size under the limit V8 stops it first with "heap
// out of memory" and a stack trace (134): a diagnosis, not a mystery.
const mib = Number(process.env.LIVE_MIB || 215);
const live = [];
for (let i = 0; i < mib; i++) {
  // 1 MiB of small objects per step (arrays of numbers, 8 bytes each).
  const chunk = new Array(128 * 1024);
  for (let j = 0; j < chunk.length; j++) chunk[j] = i + j + 0.5;
  live.push(chunk);
}
console.log('done', live.length);
