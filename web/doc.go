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
package web
