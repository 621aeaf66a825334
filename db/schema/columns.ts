// Column helpers shared by every table: text ids and timestamps with time zone.
import { text, timestamp } from 'drizzle-orm/pg-core';

export const id = () => text('id').primaryKey();
export const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
export const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
export const time = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
