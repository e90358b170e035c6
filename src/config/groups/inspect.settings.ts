import { IsInt, Min } from 'class-validator';
import { Env } from '../env.decorator';

/** The bounds on qemu-img while it reads an untrusted image: the inspect stage takes all three. */
export class InspectSettings {
  @Env('INSPECT_TIMEOUT', {
    allowed: 'a positive integer',
    doc: 'Seconds `qemu-img info` may take on an image before the job fails.',
  })
  @IsInt()
  @Min(1)
  timeoutSeconds = 60;

  /** Enforced by the kernel: prlimit --cpu on qemu-img. */
  @Env('INSPECT_CPU_SECONDS', {
    allowed: 'a positive integer',
    doc: 'CPU seconds `qemu-img info`/`check` may use on an untrusted image before the kernel stops it.',
  })
  @IsInt()
  @Min(1)
  cpuSeconds = 30;

  /** Enforced by the kernel: prlimit --as on qemu-img. */
  @Env('INSPECT_MEMORY_BYTES', {
    allowed: 'bytes, at least 64M',
    doc: 'Address space `qemu-img info`/`check` may use on an untrusted image (K/M/G suffixes allowed).',
  })
  @IsInt()
  @Min(64 * 1024 * 1024)
  addressSpaceBytes = 1024 * 1024 * 1024;
}
