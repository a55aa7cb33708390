/**
 * The part of busboy's API (npm busboy 1.6) that routes/multipart.ts uses. Local because
 * @types/busboy brings a second @types/node that changes the typing of node: built-ins
 * for the whole project.
 */
import type { Readable } from "node:stream";

export interface FileInfo {
  filename: string;
  encoding: string;
  mimeType: string;
}

export interface FieldInfo {
  nameTruncated: boolean;
  valueTruncated: boolean;
  encoding: string;
  mimeType: string;
}

export interface Limits {
  fieldNameSize?: number;
  fieldSize?: number;
  fields?: number;
  fileSize?: number;
  files?: number;
  parts?: number;
  headerPairs?: number;
}

export interface Busboy {
  write(chunk: Uint8Array): boolean;
  end(): void;
  destroy(): void;
  removeAllListeners(): this;
  once(event: "drain", listener: () => void): this;
  on(event: "file", listener: (name: string, stream: Readable, info: FileInfo) => void): this;
  on(event: "field", listener: (name: string, value: string, info: FieldInfo) => void): this;
  on(event: "partsLimit" | "filesLimit" | "fieldsLimit" | "close", listener: () => void): this;
  on(event: "error", listener: (e: Error) => void): this;
}

export default function busboy(config: {
  headers: Record<string, string>;
  limits?: Limits;
}): Busboy;
