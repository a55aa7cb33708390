/** A seed as every schema takes it: an unsigned 32-bit integer (the portable RNG's key). */
import { z } from "zod";

export const Seed = z.number().int().min(0).max(2 ** 32 - 1);
