// Prints, as one JSON line, the heap limit V8 itself settled on
// (heap_size_limit, bytes) and the NODE_OPTIONS it was given.
const v8 = require('v8');
console.log(JSON.stringify({
  node_heap_size_limit: v8.getHeapStatistics().heap_size_limit,
  env_node_options: process.env.NODE_OPTIONS || '',
}));
