import { ImageRejectedError } from '../../common/errors';
import { detectFormat, readImageHeader } from '../../convert/image-format';
import type { QemuImg } from '../../convert/qemu-img';
import { GIB } from '../../lvm/volume-backend';
import { asyncStage, JobContext } from './job-context';

/**
 * inspecting: the image must be what the request says it is, stand alone (no backing or data
 * file), and fit the volume — all checked before any volume is touched.
 */
export function inspectStage(ctx: JobContext, qemuImg: QemuImg, timeoutSeconds: number) {
  return asyncStage(ctx, async (emit, signal) => {
    emit({ type: 'stage', stage: 'inspecting' });
    const image = ctx.image!;
    const declared = ctx.request.image_type;
    const detected = detectFormat(await readImageHeader(image.path));
    if (detected !== declared) {
      throw new ImageRejectedError(
        `image ${ctx.request.image_url} is ${detected}, but the request says image_type ${declared}; ` +
          'send the image_type that matches the file',
        { detected_format: detected, image_type: declared },
      );
    }
    const info = await qemuImg.info(image.path, declared, { signal, timeoutMs: timeoutSeconds * 1000 });
    if (info.backingFilename) {
      throw new ImageRejectedError(
        `image ${ctx.request.image_url} names a backing file (${info.backingFilename}): backing files are not allowed`,
      );
    }
    if (info.dataFile) {
      throw new ImageRejectedError(
        `image ${ctx.request.image_url} uses an external data file (${info.dataFile}): not allowed`,
      );
    }
    const volumeBytes = ctx.request.volume_size_gb * GIB;
    if (info.virtualSize > volumeBytes) {
      throw new ImageRejectedError(
        `image ${ctx.request.image_url} has a virtual size of ${info.virtualSize} bytes, larger than the ` +
          `requested volume of ${volumeBytes} bytes (${ctx.request.volume_size_gb} GiB)`,
        { virtual_size: info.virtualSize, volume_bytes: volumeBytes },
      );
    }
    ctx.info = info;
  });
}
