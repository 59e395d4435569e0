// Package cloud owns the pushes of the cloud platforms' gateways on one node (SPEC §5.3,
// `Ctwing` and `OneNet`): it verifies a push at a gateway's callbackUrl (CTWing by the
// gateway's callback token, OneNET by its signature and, with an aesKey, its AES
// encryption), decodes it with the gateway's protocol and hands the messages to the
// session manager. It must not write the replicated state (presence goes through the
// session manager), serve HTTP itself (package api routes the callbacks here) or call the
// platforms.
//
// # Decoding
//
// ctwing.go and onenet.go are pure: they turn a push's bytes into what the codec gets,
// with no state, so that they can be fuzzed. Handler ties them to the gateway: any node
// answers any gateway's callback from its own copy of the state, and the device's
// connectionless session (transport HTTP, online until silent for the gateway's
// keepOnline) opens on the node that received the push, as for HTTP devices.
//
// # Answers
//
// A push that fails verification is refused with 401 and nothing is decoded; a body that
// is not the platform's format is refused with 400. Anything past that is answered 200,
// whatever becomes of it, because the platforms retry a push that is not accepted: a
// device that is not a registered device of a product of this gateway has its message
// dropped and counted (linkops_callbacks_total{outcome="unknown_device"}), and a codec
// that fails costs that push (outcome codec_error). A disabled or missing gateway is 404.
package cloud
