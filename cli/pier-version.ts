// Pier's version, from package.json (two folders up from dist/cli/), for what the edge reports.
import { createRequire } from 'node:module';

export const PIER_VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
