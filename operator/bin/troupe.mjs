#!/usr/bin/env node
// The `troupe` executable: runs the CLI's TypeScript entry (src/cli/main.ts) under tsx.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
