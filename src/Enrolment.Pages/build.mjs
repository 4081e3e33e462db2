// Builds the pages into src/Enrolment.Api/wwwroot/app, which the service serves under /app/ (Features/Pages).
// One bundle per page (its own code, the shared modules and, for the assignment page, Chart.js), plus the static files.
import * as esbuild from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.env.PAGES_OUT_DIR ?? join(here, "..", "Enrolment.Api", "wwwroot", "app");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: ["signin", "assignment", "enrolment"].map(p => join(here, "src", `${p}.ts`)),
  outdir: out,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
});
cpSync(join(here, "static"), out, { recursive: true });
console.error(`[pages] built into ${out}`);
