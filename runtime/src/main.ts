/**
 * `npm start`: the whole platform embedded in one process. It grows with the runtime; today it
 * says what it would run.
 */
console.log('troupe: the embedded platform has no components yet; `npm test` runs the real-server suite.');
