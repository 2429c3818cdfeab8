import type { z } from "zod";
import { ConfigSchema } from "./schema.ts";

type AnySchema = z.core.$ZodType;

function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  for (;;) {
    const def = current._zod.def as { type: string; innerType?: AnySchema };
    if (def.innerType && ["default", "prefault", "optional", "nullable"].includes(def.type)) {
      current = def.innerType;
    } else {
      return current;
    }
  }
}

function shapeOf(schema: AnySchema): Record<string, AnySchema> | undefined {
  const def = unwrap(schema)._zod.def as { type: string; shape?: Record<string, AnySchema> };
  return def.type === "object" ? def.shape : undefined;
}

/**
 * Every config key as `section.key`, or `section.table.key` inside a section's sub-table (such
 * as `mesh.limits`), in schema order.
 */
export function configKeys(): string[] {
  const keys: string[] = [];
  const walk = (prefix: string, schema: AnySchema) => {
    for (const [key, child] of Object.entries(shapeOf(schema) ?? {})) {
      if (shapeOf(child)) walk(`${prefix}.${key}`, child);
      else keys.push(`${prefix}.${key}`);
    }
  };
  for (const [section, schema] of Object.entries(ConfigSchema.shape)) walk(section, schema);
  return keys;
}

/** The base type (`string`, `number`, `boolean`, `array`, ...) of a config key, or undefined. */
export function keyType(dotted: string): string | undefined {
  const [section, ...path] = dotted.split(".");
  let schema: AnySchema | undefined = (ConfigSchema.shape as Record<string, AnySchema>)[
    section ?? ""
  ];
  if (path.length === 0) return undefined;
  for (const part of path) schema = schema && shapeOf(schema)?.[part];
  if (!schema || shapeOf(schema)) return undefined;
  return (unwrap(schema)._zod.def as { type: string }).type;
}

/** The environment variable that sets `section.key`: `LOAM_SECTION_KEY` (and so on, nested). */
export function envNameFor(dotted: string): string {
  return `LOAM_${dotted.replaceAll(".", "_").toUpperCase()}`;
}

/**
 * Turns a text value from the environment or a flag into the key's type: comma-separated lists,
 * true/false/1/0 booleans, decimal numbers. Text that does not convert is kept so that
 * validation reports it against the key.
 */
export function coerceText(dotted: string, text: string): unknown {
  switch (keyType(dotted)) {
    case "array":
      return text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
    case "boolean": {
      const lower = text.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(lower)) return true;
      if (["false", "0", "no", "off"].includes(lower)) return false;
      return text;
    }
    case "number":
      return /^-?\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text;
    default:
      return text;
  }
}
