/**
 * The stages a job reports, in the order they run (provision.pipeline.ts runs them; a prefetch
 * stops after downloading and reports finalizing). A new volume made as a clone of a golden base
 * reports `cloning` instead of `converting`. A cold provision that converts while the image
 * downloads (stream.stage.ts) goes from downloading to streaming to finalizing. Metrics and the API
 * list them from here.
 */
export const STAGES = [
  'resolve',
  'checking_cache',
  'downloading',
  'streaming',
  'inspecting',
  'creating_volume',
  'cloning',
  'converting',
  'finalizing',
] as const;
export type Stage = (typeof STAGES)[number];
