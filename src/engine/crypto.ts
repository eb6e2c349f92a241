import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

/**
 * Secrets at rest (mail passwords): AES-256-GCM with a random 96-bit IV per value, stored
 * as `v1:<iv>:<tag>:<ciphertext>` in base64url so the format can evolve.
 */
export interface SecretBox {
  encrypt(plain: string): string;
  decrypt(sealed: string): string;
  /**
   * HMAC-SHA256 of `data` (base64url) under a key derived from the secret key for
   * `purpose` alone, so a signature made for one purpose never passes for another.
   */
  sign(purpose: string, data: string): string;
  /** Whether `signature` is `sign(purpose, data)`, compared in constant time. */
  verify(purpose: string, data: string, signature: string): boolean;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error("secret key must be 32 bytes");
  const purposeKeys = new Map<string, Buffer>();
  const mac = (purpose: string, data: string) => {
    let k = purposeKeys.get(purpose);
    if (!k) {
      k = createHmac("sha256", key).update(`switchboard signing key: ${purpose}`).digest();
      purposeKeys.set(purpose, k);
    }
    return createHmac("sha256", k).update(data).digest();
  };
  return {
    sign: (purpose, data) => mac(purpose, data).toString("base64url"),
    verify(purpose, data, signature) {
      const given = Buffer.from(signature, "base64url");
      const want = mac(purpose, data);
      return given.length === want.length && timingSafeEqual(given, want);
    },
    encrypt(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
      return ["v1", iv, cipher.getAuthTag(), body]
        .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
        .join(":");
    },
    decrypt(sealed) {
      const [version, iv, tag, body] = sealed.split(":");
      if (version !== "v1" || !iv || !tag || body === undefined)
        throw new Error("unrecognised secret format");
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(body, "base64url")), decipher.final()]).toString(
        "utf8",
      );
    },
  };
}

const KEY_RE = /^sb_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

/**
 * API keys look like `sb_<12-char prefix>_<43-char secret>`. The prefix is stored in clear
 * to find the row; only a SHA-256 of the secret is stored (keys are high-entropy, so a
 * plain hash is enough — no password-hashing cost on every request).
 */
export function generateApiKey(): { key: string; prefix: string; secretHash: string } {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(12);
  const prefix = Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
  const secret = randomBytes(32).toString("base64url");
  return { key: `sb_${prefix}_${secret}`, prefix, secretHash: sha256(secret) };
}

export function parseApiKey(key: string): { prefix: string; secret: string } | null {
  const m = KEY_RE.exec(key.trim());
  return m ? { prefix: m[1]!, secret: m[2]! } : null;
}

export function verifySecret(secret: string, secretHash: string): boolean {
  const a = Buffer.from(sha256(secret), "hex");
  const b = Buffer.from(secretHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

export function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}
