// Package web owns the web console: the HTML, CSS and JavaScript modules of the manual's
// 运维管理 pages, embedded in the binary with go:embed and served by every node at "/"
// (the page) and "/console/" (its files), so that an ops user needs nothing but a browser.
//
// The console is a client of the public REST API and nothing else: every page calls
// /api/v1 with the logged-in user's token, exactly as the CLI does, so it can do nothing
// the API forbids and shows the API's own problem messages (errors[].field under the field
// it names). There is no build step and no package registry behind it: the files here are
// what the browser runs.
//
// The package must not import any other linkops package: it serves files, and whatever
// the console knows about the cluster it learns through the API.
//
// Key decisions and trade-offs:
//   - No framework and no build: ES modules the browser loads as they are (console/js),
//     one per page under pages/, sharing api.js (the only door to the API), ui.js
//     (elements, forms, dialogs) and i18n.js (every word in Chinese and English). A page
//     builds its elements with ui.h and never with innerHTML, so values from the cluster
//     stay text; the Content-Security-Policy allows scripts from this origin only.
//   - Hash routing (#/gateways/…): the node serves one page, and a link to any console page
//     works on every node.
//   - The token lives in the browser's localStorage, per origin: a console opened on
//     another node asks for a login (a token is valid on every node, but the browser keeps
//     one per origin).
//   - Event streams (debug, device messages) are read with fetch, not EventSource, which
//     cannot send the Authorization header.
//   - A read or upload answered 503 no_leader is sent again for about 10 s: an election is
//     not an error a user should see. Other refusals are shown as the server words them.
//   - Firmware signs are computed in the page with streamed MD5/SHA-256 (hash.js):
//     crypto.subtle cannot stream and is missing on plain-HTTP origins.
package web
