// Encrypt, Decrypt, Sign and Verify with @aws-sdk/client-kms against the endpoint in
// AWS_ENDPOINT_URL_KMS (credentials and region from the environment); prints the results as JSON.
import { KMSClient, EncryptCommand, DecryptCommand, SignCommand, VerifyCommand } from "@aws-sdk/client-kms";

const [symmetricKey, signingKey] = process.argv.slice(2);
const kms = new KMSClient({ maxAttempts: 1 });
const plaintext = new TextEncoder().encode("from node");
const context = { app: "js" };
const enc = await kms.send(new EncryptCommand({ KeyId: symmetricKey, Plaintext: plaintext, EncryptionContext: context }));
const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: context }));
const message = new TextEncoder().encode("signed in node");
const sig = await kms.send(new SignCommand({ KeyId: signingKey, Message: message, SigningAlgorithm: "ECDSA_SHA_256" }));
const ver = await kms.send(
  new VerifyCommand({ KeyId: signingKey, Message: message, Signature: sig.Signature, SigningAlgorithm: "ECDSA_SHA_256" }),
);
let refused = null;
try {
  await new KMSClient({ maxAttempts: 1, credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: "wrong" } })
    .send(new EncryptCommand({ KeyId: symmetricKey, Plaintext: plaintext }));
} catch (err) {
  refused = err.name;
}
console.log(JSON.stringify({
  keyId: enc.KeyId,
  plaintext: new TextDecoder().decode(dec.Plaintext),
  signatureValid: ver.SignatureValid,
  refused,
}));
