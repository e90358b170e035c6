import { open } from 'node:fs/promises';

/** fsync a file (its data reaches the disk) or a directory (a rename in it becomes durable). */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
