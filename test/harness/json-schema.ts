/**
 * The subset of JSON Schema (OpenAPI 3.0 flavour) the original service's api.yaml uses: type,
 * required, properties, enum, format (uuid, date-time, uri), minimum/maximum and nullable. Hand
 * written rather than ajv: the ajv in node_modules is eslint's 6.x, and the 8.x under fastify is
 * not ours to import. Returns every problem found, each with its JSON path; [] means valid.
 */
export interface Schema {
  type?: 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'array';
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  enum?: unknown[];
  format?: 'uuid' | 'date-time' | 'uri' | 'int64';
  minimum?: number;
  maximum?: number;
  nullable?: boolean;
}

const FORMATS: Record<string, (value: string) => boolean> = {
  uuid: (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
  'date-time': (v) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v),
  uri: (v) => URL.canParse(v),
  int64: () => true,
};

function typeOk(type: Schema['type'], value: unknown): boolean {
  switch (type) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    default:
      return type === undefined || typeof value === type;
  }
}

export function validate(schema: Schema, value: unknown, path = '$'): string[] {
  if (value === null) return schema.nullable ? [] : [`${path}: null, expected ${schema.type ?? 'a value'}`];
  if (!typeOk(schema.type, value)) return [`${path}: ${JSON.stringify(value)} is not of type ${schema.type}`];
  const problems: string[] = [];
  if (schema.enum && !schema.enum.includes(value)) {
    problems.push(`${path}: ${JSON.stringify(value)} is not one of ${schema.enum.join(', ')}`);
  }
  if (schema.format && typeof value === 'string' && !FORMATS[schema.format](value)) {
    problems.push(`${path}: ${JSON.stringify(value)} is not a ${schema.format}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum)
      problems.push(`${path}: ${value} < ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum)
      problems.push(`${path}: ${value} > ${schema.maximum}`);
  }
  if (schema.type === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in record)) problems.push(`${path}.${key}: missing`);
    }
    for (const [key, sub] of Object.entries(schema.properties ?? {})) {
      if (key in record) problems.push(...validate(sub, record[key], `${path}.${key}`));
    }
  }
  if (schema.type === 'array' && schema.items) {
    (value as unknown[]).forEach((item, i) =>
      problems.push(...validate(schema.items!, item, `${path}[${i}]`)),
    );
  }
  return problems;
}
