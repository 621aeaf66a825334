// Every table of Pier's database; drizzle-kit reads this barrel to generate migrations.
export * from './orgs.js';
export * from './tokens.js';
export * from './apps.js';
export * from './app-leases.js';
export * from './releases.js';
export * from './deployments.js';
export * from './instances.js';
export * from './endpoints.js';
export * from './port-claims.js';
export * from './edges.js';
export * from './events.js';
export * from './nodes.js';
export * from './idempotency-keys.js';
export * from './settings.js';
export * from './ip-addresses.js';
export * from './volumes.js';
export * from './snapshots.js';
