import type { Socket } from 'node:net';
import {
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  OPT,
  OPTION_HEADER_BYTES,
  REP,
  exportNameReply,
  goReplies,
  optionReply,
  parseGoData,
  parseOptionHeader,
  serverGreeting,
} from './nbd-protocol';
import type { SocketReader } from './socket-reader';

/** An option's data longer than this is not one this export understands (names are short). */
const MAX_OPTION_DATA = 64 * 1024;

/** What the client and the export agreed on: whether READs are answered with structured replies. */
export interface Agreed {
  structured: boolean;
}

/**
 * The fixed newstyle handshake of the one, unnamed export. Resolves with what was agreed when the
 * client entered the transmission phase (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), false when it
 * aborted or spoke something else. Options other than GO, INFO, EXPORT_NAME, STRUCTURED_REPLY and
 * ABORT are answered unsupported.
 */
export async function serveHandshake(
  socket: Socket,
  reader: SocketReader,
  size: number,
): Promise<Agreed | false> {
  const agreed: Agreed = { structured: false };
  socket.write(serverGreeting());
  const clientFlags = (await reader.read(4)).readUInt32BE(0);
  if ((clientFlags & FLAG_FIXED_NEWSTYLE) === 0) return false; // oldstyle-only clients are not served
  const noZeroes = (clientFlags & FLAG_NO_ZEROES) !== 0;
  for (;;) {
    const header = parseOptionHeader(await reader.read(OPTION_HEADER_BYTES));
    if ('error' in header || header.length > MAX_OPTION_DATA) return false;
    const data = header.length > 0 ? await reader.read(header.length) : Buffer.alloc(0);
    switch (header.option) {
      case OPT.EXPORT_NAME:
        if (data.length !== 0) return false; // an unknown name: the protocol says to just close
        socket.write(exportNameReply(size, noZeroes));
        return agreed;
      case OPT.ABORT:
        socket.write(optionReply(header.option, REP.ACK));
        return false;
      case OPT.GO:
      case OPT.INFO: {
        const go = parseGoData(data);
        if (!go) socket.write(optionReply(header.option, REP.ERR_INVALID));
        else if (go.name !== '') socket.write(optionReply(header.option, REP.ERR_UNKNOWN));
        else {
          for (const reply of goReplies(header.option, size)) socket.write(reply);
          if (header.option === OPT.GO) return agreed;
        }
        break;
      }
      case OPT.STRUCTURED_REPLY:
        if (data.length !== 0) socket.write(optionReply(header.option, REP.ERR_INVALID));
        else {
          agreed.structured = true;
          socket.write(optionReply(header.option, REP.ACK));
        }
        break;
      default:
        socket.write(optionReply(header.option, REP.ERR_UNSUP));
    }
  }
}
