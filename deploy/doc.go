// Package deploy holds no code: its tests check the deployment artifacts of the repository
// for real, with the tools that run them.
//
//   - scripts/cluster.sh starts three local nodes that elect one leader, and stops them;
//   - deploy/systemd/linkops.service passes systemd-analyze verify (and a security review);
//   - the Vagrantfile passes vagrant validate and renders the right env file per VM;
//   - `make image` builds a FROM-scratch image that runs, and docker-compose.yml starts a
//     three-node cluster from it.
//
// The tools come from Debian packages that `make deps` (scripts/test-deps.sh) installs; a
// missing tool fails the tests rather than skipping them. Docker must be running.
package deploy
