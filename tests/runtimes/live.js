// Keeps a live set of LIVE_MIB (default 235) MiB of JavaScript arrays and
// makes GARBAGE_MIB (default 2000) MiB of short-lived ones beside it, then
// prints "done". In a 256 MiB container V8's own heap limit (above the
// container's) lets the heap grow until the kernel's OOM killer ends it
// (137, not a word in the log); with --max-old-space-size under the limit
// V8 stops it first with "heap out of memory" and a stack trace (134): a
// diagnosis, not a mystery (docs/benchmarks.md, issue 25).
const live = [];
const chunk = (seed) => {
  // 1 MiB: 128 Ki doubles.
  const a = new Array(128 * 1024);
  for (let j = 0; j < a.length; j++) a[j] = seed + j + 0.5;
  return a;
};
for (let i = 0; i < Number(process.env.LIVE_MIB || 235); i++) live.push(chunk(i));
console.log('live set allocated, heapUsed', process.memoryUsage().heapUsed >> 20, 'MiB');
let sink;
for (let i = 0; i < Number(process.env.GARBAGE_MIB || 2000); i++) sink = chunk(i);
console.log('done', live.length, sink.length);
