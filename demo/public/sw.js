// Service worker of the hearth demo: caches the built app shell (precache.json, written by
// vite.config.ts at build time) so the pages open offline. Model files are not cached here:
// src/storage/model-store.ts keeps them in OPFS. Bump CACHE when the caching rules change.

const CACHE = 'hearth-shell-v1';

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      let files = [];
      try {
        const r = await fetch('./precache.json', { cache: 'no-store' });
        if (r.ok) files = await r.json();
      } catch {
        // No list (dev server): the fetch handler still caches what the page fetches.
      }
      await cache.addAll(['./', ...files.map((f) => `./${f}`)]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

/** Same-origin GETs only, and never /models/ (big files, kept by the model store) or the list itself. */
function handles(request) {
  if (request.method !== 'GET') return false;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return false;
  const scope = new URL(self.registration.scope).pathname;
  const path = url.pathname.startsWith(scope) ? url.pathname.slice(scope.length) : url.pathname;
  return !path.startsWith('models/') && path !== 'precache.json';
}

async function put(request, response) {
  if (response.ok && response.type === 'basic') {
    const cache = await caches.open(CACHE);
    await cache.put(request, response.clone());
  }
  return response;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (!handles(request)) return;
  if (request.mode === 'navigate') {
    // Network first for pages, so a new build shows up; the cached copy when offline.
    event.respondWith(
      fetch(request)
        .then((r) => put(request, r))
        .catch(
          async () =>
            (await caches.match(request, { ignoreSearch: true, ignoreVary: true })) ?? (await caches.match('./', { ignoreVary: true })) ?? Response.error(),
        ),
    );
    return;
  }
  // Hashed assets never change under one name: cache first. ignoreVary: the precache entries were
  // fetched without the Origin header that module scripts send, and the server varies on it.
  event.respondWith(caches.match(request, { ignoreVary: true }).then((hit) => hit ?? fetch(request).then((r) => put(request, r))));
});
