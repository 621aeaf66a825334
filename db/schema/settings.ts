// Installation-wide settings as key/value rows, e.g. the installation id that labels every
// container this installation makes (so servers of other installations sharing a Docker engine
// never touch them).
import { pgTable, text } from 'drizzle-orm/pg-core';

export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});
