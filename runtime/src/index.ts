/** @troupe/runtime: the actor runtime and everything that runs on it. */
export {};
