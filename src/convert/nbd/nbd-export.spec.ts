import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Arrivals } from './arrivals';
import { NbdExport, removeStaleExportDirs } from './nbd-export';
import { FetchedAheadDifferError } from './reads-ahead';
import { CMD, IHAVEOPT, NBD_ERR, NBDMAGIC, OPT, REP, REQUEST_MAGIC } from './nbd-protocol';
import { SocketReader } from './socket-reader';

/** A hand-written NBD client: the protocol's byte layout, to see each answer the export gives. */
async function client(socketPath: string) {
  const socket = connect(socketPath);
  await once(socket, 'connect');
  const reader = new SocketReader(socket);
  const option = (code: number, data = Buffer.alloc(0)) => {
    const head = Buffer.alloc(16);
    head.writeBigUInt64BE(IHAVEOPT, 0);
    head.writeUInt32BE(code, 8);
    head.writeUInt32BE(data.length, 12);
    socket.write(Buffer.concat([head, data]));
  };
  const optionReply = async () => {
    const head = await reader.read(20);
    const length = head.readUInt32BE(16);
    return {
      option: head.readUInt32BE(8),
      type: head.readUInt32BE(12),
      data: length ? await reader.read(length) : Buffer.alloc(0),
    };
  };
  const request = (type: number, cookie: number, offset: number, length: number) => {
    const out = Buffer.alloc(28);
    out.writeUInt32BE(REQUEST_MAGIC, 0);
    out.writeUInt16BE(type, 6);
    out.writeBigUInt64BE(BigInt(cookie), 8);
    out.writeBigUInt64BE(BigInt(offset), 16);
    out.writeUInt32BE(length, 24);
    socket.write(out);
  };
  const reply = async () => {
    const head = await reader.read(16);
    return { error: head.readUInt32BE(4), cookie: Number(head.readBigUInt64BE(8)) };
  };
  return { socket, reader, option, optionReply, request, reply };
}

const GO_DEFAULT = Buffer.from([0, 0, 0, 0, 0, 0]);

describe('removeStaleExportDirs: what a killed daemon left in the tmp directory', () => {
  it("removes the export directories of dead processes, keeps a live process's and anything else", async () => {
    const parent = mkdtempSync(join(tmpdir(), 'lvp-nbd-stale-spec-'));
    try {
      // A pid above the kernel's pid_max never names a live process.
      const dead = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;
      for (const name of [`lvp-nbd-${dead}-aB3dE9`, `lvp-nbd-${process.pid}-xY7zQ1`, 'lvp-nbd-aB3dE9']) {
        mkdirSync(join(parent, name));
        writeFileSync(join(parent, name, 'export.sock'), '');
      }
      assert.equal(await removeStaleExportDirs(parent), 1);
      assert.deepEqual(readdirSync(parent).sort(), [`lvp-nbd-${process.pid}-xY7zQ1`, 'lvp-nbd-aB3dE9']);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it("names an export's directory after the daemon's pid", async () => {
    const parent = mkdtempSync(join(tmpdir(), 'lvp-nbd-name-spec-'));
    const file = join(parent, 'image');
    writeFileSync(file, Buffer.alloc(512));
    const arrivals = new Arrivals(512);
    arrivals.advance(512);
    const exported = await NbdExport.open({ file, arrivals, parentDir: parent });
    try {
      assert.match(exported.socketPath, new RegExp(`/lvp-nbd-${process.pid}-[^/]+/export\\.sock$`));
      assert.equal(await removeStaleExportDirs(parent), 0, 'a live daemon keeps its export');
      assert.ok(existsSync(exported.socketPath));
    } finally {
      await exported.close();
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('NbdExport over a unix socket, spoken to byte by byte', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lvp-nbd-spec-'));
  const file = join(dir, 'image');
  const content = Buffer.alloc(4096);
  for (let i = 0; i < content.length; i++) content[i] = i % 251;
  let arrivals: Arrivals;
  let exported: NbdExport;

  before(async () => {
    writeFileSync(file, content.subarray(0, 1024));
    arrivals = new Arrivals(content.length);
    arrivals.advance(1024);
    exported = await NbdExport.open({ file, arrivals, parentDir: dir });
  });

  after(async () => {
    await exported.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers READs with one structured chunk (data and its offset, or an error) once structured replies are agreed', async () => {
    const c = await client(exported.socketPath);
    await c.reader.read(18);
    c.socket.write(Buffer.from([0, 0, 0, 3]));
    c.option(OPT.STRUCTURED_REPLY);
    assert.equal((await c.optionReply()).type, REP.ACK);
    c.option(OPT.GO, GO_DEFAULT);
    for (let i = 0; i < 3; i++) await c.optionReply(); // size, block sizes, ACK
    c.request(CMD.READ, 9, 100, 50);
    const head = await c.reader.read(20);
    assert.equal(head.readUInt32BE(0), 0x668e33ef, 'structured reply magic');
    assert.equal(head.readUInt16BE(4), 1, 'done');
    assert.equal(head.readUInt16BE(6), 1, 'NBD_REPLY_TYPE_OFFSET_DATA');
    assert.equal(Number(head.readBigUInt64BE(8)), 9);
    assert.equal(head.readUInt32BE(16), 8 + 50);
    const body = await c.reader.read(8 + 50);
    assert.equal(Number(body.readBigUInt64BE(0)), 100);
    assert.deepEqual(body.subarray(8), content.subarray(100, 150));
    c.request(CMD.READ, 10, 4000, 200); // beyond the export's end
    const error = await c.reader.read(26);
    assert.equal(error.readUInt16BE(6), (1 << 15) | 1, 'NBD_REPLY_TYPE_ERROR');
    assert.equal(Number(error.readBigUInt64BE(8)), 10);
    assert.equal(error.readUInt32BE(20), NBD_ERR.EINVAL);
    c.socket.destroy();
  });

  it('greets fixed newstyle, answers unknown options unsupported, and GO with the full size, read-only', async () => {
    const c = await client(exported.socketPath);
    const greeting = await c.reader.read(18);
    assert.equal(greeting.readBigUInt64BE(0), NBDMAGIC);
    assert.equal(greeting.readBigUInt64BE(8), IHAVEOPT);
    assert.equal(greeting.readUInt16BE(16), 3);
    c.socket.write(Buffer.from([0, 0, 0, 3]));
    c.option(5); // NBD_OPT_STARTTLS
    assert.equal((await c.optionReply()).type, REP.ERR_UNSUP);
    c.option(OPT.GO, Buffer.from([0, 0, 0, 4, 0x64, 0x69, 0x73, 0x6b, 0, 0])); // "disk"
    assert.equal((await c.optionReply()).type, REP.ERR_UNKNOWN);
    c.option(OPT.GO, GO_DEFAULT);
    const info = await c.optionReply();
    assert.equal(info.type, REP.INFO);
    assert.equal(
      info.data.readBigUInt64BE(2),
      BigInt(content.length),
      'size is the full length, not what arrived',
    );
    assert.equal(info.data.readUInt16BE(10) & 2, 2, 'read-only');
    assert.equal((await c.optionReply()).type, REP.INFO); // block sizes
    assert.equal((await c.optionReply()).type, REP.ACK);

    c.request(CMD.WRITE, 7, 0, 4);
    c.socket.write(Buffer.alloc(4));
    assert.deepEqual(await c.reply(), { error: NBD_ERR.EPERM, cookie: 7 });
    c.request(CMD.READ, 8, 4000, 200);
    assert.deepEqual(await c.reply(), { error: NBD_ERR.EINVAL, cookie: 8 });

    // A read beyond what arrived waits; one within answers first, out of order.
    c.request(CMD.READ, 9, 2000, 1000);
    c.request(CMD.READ, 10, 0, 512);
    assert.deepEqual(await c.reply(), { error: 0, cookie: 10 });
    assert.deepEqual(await c.reader.read(512), content.subarray(0, 512));
    writeFileSync(file, content);
    arrivals.advance(2999);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(arrivals.waiting, 1, 'still waiting one byte short');
    arrivals.advance(3000);
    assert.deepEqual(await c.reply(), { error: 0, cookie: 9 });
    assert.deepEqual(await c.reader.read(1000), content.subarray(2000, 3000));

    c.request(CMD.DISC, 11, 0, 0);
    await once(c.socket, 'close');
  });

  it('ends the handshake on NBD_OPT_ABORT and serves EXPORT_NAME without the 124 zeros when asked', async () => {
    const aborted = await client(exported.socketPath);
    await aborted.reader.read(18);
    aborted.socket.write(Buffer.from([0, 0, 0, 1]));
    aborted.option(OPT.ABORT);
    assert.equal((await aborted.optionReply()).type, REP.ACK);
    await once(aborted.socket, 'close');

    const old = await client(exported.socketPath);
    await old.reader.read(18);
    old.socket.write(Buffer.from([0, 0, 0, 3]));
    old.option(OPT.EXPORT_NAME);
    const answer = await old.reader.read(10);
    assert.equal(answer.readBigUInt64BE(0), BigInt(content.length));
    old.request(CMD.READ, 1, 100, 10);
    assert.deepEqual(await old.reply(), { error: 0, cookie: 1 });
    assert.deepEqual(await old.reader.read(10), content.subarray(100, 110));
    old.socket.destroy();
  });
});

describe('NbdExport: reads far ahead of the download, fetched apart (reads-ahead.ts)', () => {
  const MIB = 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), 'lvp-nbd-ahead-spec-'));
  const file = join(dir, 'image');
  const size = 64 * MIB;
  /** The image's bytes at `offset`: a pattern no two 4 KiB blocks share. */
  const bytesAt = (offset: number, length: number) => {
    const data = Buffer.alloc(length);
    for (let i = 0; i < length; i += 4) data.writeUInt32BE(((offset + i) / 4) >>> 0, i);
    return data;
  };
  const FAR = 48 * MIB;

  after(() => rmSync(dir, { recursive: true, force: true }));

  /** An export of a file of which only the first 1 MiB has arrived; `fetchRange` serves what is asked from the pattern. */
  async function exportWith(fetchRange: (offset: number, length: number) => Promise<Buffer>) {
    writeFileSync(file, bytesAt(0, MIB));
    const arrivals = new Arrivals(size);
    arrivals.advance(MIB);
    const asked: [number, number][] = [];
    const exported = await NbdExport.open({
      file,
      arrivals,
      parentDir: dir,
      fetchRange: (offset, length) => {
        asked.push([offset, length]);
        return fetchRange(offset, length);
      },
    });
    const c = await client(exported.socketPath);
    await c.reader.read(18);
    c.socket.write(Buffer.from([0, 0, 0, 3]));
    c.option(OPT.GO, GO_DEFAULT);
    for (let i = 0; i < 3; i++) await c.optionReply();
    /** The download writes the rest of the file; the arrivals say so. */
    const downloadRest = () => {
      writeFileSync(file, bytesAt(0, size));
      arrivals.finish();
    };
    return { exported, c, asked, downloadRest };
  }

  it('answers a read 32 MiB or more beyond the download at once with fetched bytes; one nearer waits', async () => {
    const { exported, c, asked, downloadRest } = await exportWith(async (o, l) => bytesAt(o, l));
    try {
      c.request(CMD.READ, 1, 20 * MIB, 4096); // 19 MiB beyond what arrived: waits for the download
      c.request(CMD.READ, 2, FAR, 65536);
      assert.deepEqual(await c.reply(), { error: 0, cookie: 2 });
      assert.deepEqual(await c.reader.read(65536), bytesAt(FAR, 65536));
      assert.deepEqual(asked, [[FAR, 65536]], 'only the far read was fetched apart');
      assert.deepEqual(exported.aheadStats, { fetched: 1, bytes: 65536, failed: 0 });
      assert.equal(exported.stats.waitedReads, 1);
      downloadRest();
      assert.deepEqual(await c.reply(), { error: 0, cookie: 1 });
      assert.deepEqual(await c.reader.read(4096), bytesAt(20 * MIB, 4096));
      await exported.aheadVerified();
    } finally {
      c.socket.destroy();
      await exported.close();
    }
  });

  it('fails aheadVerified() when the fetched bytes differ from those the download wrote', async () => {
    const stale = bytesAt(FAR, 65536);
    stale[100] ^= 0xff;
    const { exported, c, downloadRest } = await exportWith(async () => stale);
    try {
      c.request(CMD.READ, 1, FAR, 65536);
      assert.deepEqual(await c.reply(), { error: 0, cookie: 1 });
      assert.deepEqual(await c.reader.read(65536), stale, 'the reader got what the range request brought');
      downloadRest();
      await assert.rejects(exported.aheadVerified(), (error: Error) => {
        assert.ok(error instanceof FetchedAheadDifferError);
        assert.match(error.message, new RegExp(`offset ${FAR} differ from the downloaded ones`));
        return true;
      });
    } finally {
      c.socket.destroy();
      await exported.close();
    }
  });

  it('a range request that fails leaves the read to wait for the download; after 3 failures none is tried', async () => {
    const { exported, c, asked, downloadRest } = await exportWith(async () => {
      throw new Error('416 Range Not Satisfiable');
    });
    try {
      for (let i = 0; i < 3; i++) c.request(CMD.READ, i, FAR + i * 65536, 65536);
      await new Promise((resolve) => setTimeout(resolve, 50));
      c.request(CMD.READ, 3, FAR + 3 * 65536, 65536);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(asked.length, 3, 'three range requests, then no more');
      assert.equal(exported.aheadStats.failed, 3);
      downloadRest();
      const answered = new Set<number>();
      for (let i = 0; i < 4; i++) {
        const { error, cookie } = await c.reply();
        assert.equal(error, 0);
        assert.deepEqual(await c.reader.read(65536), bytesAt(FAR + cookie * 65536, 65536));
        answered.add(cookie);
      }
      assert.equal(answered.size, 4);
      await exported.aheadVerified();
    } finally {
      c.socket.destroy();
      await exported.close();
    }
  });
});
