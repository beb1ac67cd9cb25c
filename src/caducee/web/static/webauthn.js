// Caducée — WebAuthn (security keys and passkeys): registration and login.
// The server sends the options as JSON (py_webauthn's options_to_json); binary fields are
// base64url. Requests carry the CSRF token of the session in the X-CSRF-Token header.
"use strict";

(() => {
  const b64urlToBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };
  const bytesToB64url = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (const b of bytes) {
      text += String.fromCharCode(b);
    }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };
  const post = async (url, body) => {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(data.error || response.statusText);
    }
    return data;
  };
  const showError = (message) => {
    const box = document.getElementById("webauthn-error");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  };
  const descriptors = (list) =>
    (list || []).map((item) => ({ ...item, id: b64urlToBytes(item.id) }));

  const register = async (form) => {
    const label = form.querySelector('input[name="libelle"]').value;
    const options = await post(form.dataset.options);
    options.challenge = b64urlToBytes(options.challenge);
    options.user.id = b64urlToBytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    const credential = await navigator.credentials.create({ publicKey: options });
    const response = credential.response;
    const result = await post(form.dataset.finish, {
      label,
      credential: {
        id: credential.id,
        rawId: bytesToB64url(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: bytesToB64url(response.clientDataJSON),
          attestationObject: bytesToB64url(response.attestationObject),
          transports: response.getTransports ? response.getTransports() : [],
        },
        clientExtensionResults: credential.getClientExtensionResults(),
      },
    });
    window.location.assign(result.redirect);
  };

  const login = async (button) => {
    const options = await post(button.dataset.options);
    options.challenge = b64urlToBytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    const credential = await navigator.credentials.get({ publicKey: options });
    const response = credential.response;
    const result = await post(button.dataset.finish, {
      credential: {
        id: credential.id,
        rawId: bytesToB64url(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: bytesToB64url(response.clientDataJSON),
          authenticatorData: bytesToB64url(response.authenticatorData),
          signature: bytesToB64url(response.signature),
          userHandle: response.userHandle ? bytesToB64url(response.userHandle) : null,
        },
        clientExtensionResults: credential.getClientExtensionResults(),
      },
    });
    window.location.assign(result.redirect);
  };

  document.addEventListener("DOMContentLoaded", () => {
    const supported = window.PublicKeyCredential !== undefined;
    const form = document.getElementById("webauthn-register");
    if (form) {
      if (!supported) {
        form.hidden = true;
      }
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        register(form).catch((error) => showError(error.message));
      });
      // The buttons stay disabled until this handler is in place: a click before it would
      // submit the form natively, as a GET carrying the key's name in the address.
      form.querySelector('button[type="submit"]').disabled = !supported;
    }
    const button = document.getElementById("webauthn-login");
    if (button) {
      if (!supported) {
        button.hidden = true;
      }
      button.addEventListener("click", () => {
        login(button).catch((error) => showError(error.message));
      });
      button.disabled = !supported;
    }
  });
})();
