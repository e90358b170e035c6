import { request } from 'node:http';

export interface SseEvent {
  id?: string;
  event: string;
  data: any;
}

/**
 * Reads a Server-Sent Events stream with a plain HTTP client until the server closes it.
 * Resolves with the events and the comment lines (heartbeats) seen.
 */
export function readSse(
  url: string,
  onEvent?: (event: SseEvent) => void,
): {
  done: Promise<{ events: SseEvent[]; comments: string[]; status: number; headers: Record<string, unknown> }>;
  close: () => void;
} {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let close = () => {};
  const done = new Promise<{
    events: SseEvent[];
    comments: string[];
    status: number;
    headers: Record<string, unknown>;
  }>((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let split: number;
        while ((split = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, split);
          buffer = buffer.slice(split + 2);
          const event: SseEvent = { event: 'message', data: undefined };
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event.event = line.slice(7);
            else if (line.startsWith('id: ')) event.id = line.slice(4);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) {
            event.data = JSON.parse(data);
            events.push(event);
            onEvent?.(event);
          }
        }
      });
      res.on('end', () => resolve({ events, comments, status: res.statusCode!, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
    close = () => req.destroy();
  });
  return { done, close: () => close() };
}
