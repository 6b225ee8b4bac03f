// Copies the map library's distribution files from node_modules into the folder the
// API serves (api/web/vendor), with its licence and version. The output is committed,
// so running Crop AI needs neither Node.js nor the network.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "api", "web", "vendor", "leaflet");
const source = join(here, "node_modules", "leaflet");
const { version } = JSON.parse(readFileSync(join(source, "package.json"), "utf8"));

rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const file of ["leaflet.js", "leaflet.css", "images"]) {
  cpSync(join(source, "dist", file), join(target, file), { recursive: true });
}
cpSync(join(source, "LICENSE"), join(target, "LICENSE"));
writeFileSync(join(target, "VERSION"), `${version}\n`);
console.log(`leaflet ${version} -> ${target}`);
