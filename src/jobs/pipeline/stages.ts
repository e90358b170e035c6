/**
 * The stages a job reports, in the order they run (provision.pipeline.ts runs them; a prefetch
 * stops after downloading and reports finalizing). Metrics and the API list them from here.
 */
export const STAGES = [
  'resolve',
  'checking_cache',
  'downloading',
  'inspecting',
  'creating_volume',
  'converting',
  'finalizing',
] as const;
export type Stage = (typeof STAGES)[number];
