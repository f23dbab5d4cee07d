// The existing browser backup client, run under Node's WebCrypto (Node 18+), used to prove that
// Coffer speaks its scheme byte for byte. The functions below are the browser client's own code;
// only the nonce is injectable so that a test vector can be fixed.
//
//   node scripts/browser-backup-client.mjs vector                     prints a test vector (JSON)
//   node scripts/browser-backup-client.mjs save URL USER PASS JSON    registers (if needed) and saves
//   node scripts/browser-backup-client.mjs restore URL USER PASS      restores and prints the JSON
//   node scripts/browser-backup-client.mjs decrypt USER PASS DATA     decrypts a `data` string

async function getServerUserId(username) {
  const normalized = username.toLowerCase()
  const data = new TextEncoder().encode(normalized)
  const hashBuffer = await crypto.subtle.digest('SHA-256', data)
  return Array.from(new Uint8Array(hashBuffer)).map(b => b.toString(16).padStart(2, '0')).join('')
}

async function deriveEncryptionKey(password, username) {
  const encoder = new TextEncoder()
  const keyMaterial = await crypto.subtle.importKey('raw', encoder.encode(password), 'PBKDF2', false, ['deriveKey'])
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt: encoder.encode(username.toLowerCase()), iterations: 100000, hash: 'SHA-256' },
    keyMaterial,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt']
  )
}

async function getStorageKey(userId, password) {
  const data = new TextEncoder().encode(userId + password)
  const hashBuffer = await crypto.subtle.digest('SHA-256', data)
  return Array.from(new Uint8Array(hashBuffer)).map(b => b.toString(16).padStart(2, '0')).join('')
}

async function encryptData(data, key, fixedNonce) {
  const nonce = fixedNonce ?? crypto.getRandomValues(new Uint8Array(12))
  const encryptedBuffer = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce }, key, new TextEncoder().encode(data))
  const encrypted = btoa(String.fromCharCode(...new Uint8Array(encryptedBuffer)))
  const nonceB64 = btoa(String.fromCharCode(...nonce))
  return { encrypted, nonce: nonceB64 }
}

async function decryptData(encrypted, nonce, key) {
  const encryptedBuffer = Uint8Array.from(atob(encrypted), c => c.charCodeAt(0))
  const nonceBuffer = Uint8Array.from(atob(nonce), c => c.charCodeAt(0))
  const decryptedBuffer = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonceBuffer }, key, encryptedBuffer)
  return new TextDecoder().decode(decryptedBuffer)
}

async function registerBackupUser(url, credentials) {
  const userId = await getServerUserId(credentials.username)
  const response = await fetch(`${url}/api/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userId })
  })
  if (!response.ok) {
    if (response.status === 409) throw new Error('User already registered')
    throw new Error('Registration failed')
  }
}

async function saveBackup(url, credentials, data) {
  const userId = await getServerUserId(credentials.username)
  const storageKey = await getStorageKey(userId, credentials.password)
  const encryptionKey = await deriveEncryptionKey(credentials.password, credentials.username)
  const { encrypted, nonce } = await encryptData(JSON.stringify(data), encryptionKey)
  const payload = JSON.stringify({ encrypted, nonce })
  const response = await fetch(`${url}/api/backup`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ userId, storageKey, data: payload })
  })
  if (!response.ok) throw new Error(`Backup failed (${response.status})`)
}

async function restoreBackup(url, credentials) {
  const userId = await getServerUserId(credentials.username)
  const storageKey = await getStorageKey(userId, credentials.password)
  const encryptionKey = await deriveEncryptionKey(credentials.password, credentials.username)
  const response = await fetch(`${url}/api/backup?userId=${userId}&storageKey=${storageKey}`)
  if (!response.ok) {
    if (response.status === 404) throw new Error('No backup found')
    throw new Error('Failed to retrieve backup')
  }
  const { data } = await response.json()
  const { encrypted, nonce } = JSON.parse(data)
  return JSON.parse(await decryptData(encrypted, nonce, encryptionKey))
}

const [mode, ...args] = process.argv.slice(2)
try {
  if (mode === 'vector') {
    const username = 'Alice.Example@Mail.test'
    const password = 'correct horse battery staple ✓'
    const plaintext = JSON.stringify({ workouts: [{ day: '2026-11-23', reps: 42 }], note: 'ünïcödé/+=' })
    const nonce = Uint8Array.from({ length: 12 }, (_, i) => i * 17 + 3)
    const userId = await getServerUserId(username)
    const storageKey = await getStorageKey(userId, password)
    const key = await deriveEncryptionKey(password, username)
    const { encrypted, nonce: nonceB64 } = await encryptData(plaintext, key, nonce)
    const data = JSON.stringify({ encrypted, nonce: nonceB64 })
    console.log(JSON.stringify({
      username, password, plaintext, nonceHex: Buffer.from(nonce).toString('hex'),
      userId, storageKey, data, producedBy: 'scripts/browser-backup-client.mjs vector (Node WebCrypto)'
    }, null, 2))
  } else if (mode === 'save') {
    const [url, username, password, json] = args
    try { await registerBackupUser(url, { username, password }) } catch (e) { if (e.message !== 'User already registered') throw e }
    await saveBackup(url, { username, password }, JSON.parse(json))
    console.log('saved')
  } else if (mode === 'restore') {
    const [url, username, password] = args
    console.log(JSON.stringify(await restoreBackup(url, { username, password })))
  } else if (mode === 'decrypt') {
    const [username, password, data] = args
    const { encrypted, nonce } = JSON.parse(data)
    console.log(await decryptData(encrypted, nonce, await deriveEncryptionKey(password, username)))
  } else {
    console.error('usage: vector | save URL USER PASS JSON | restore URL USER PASS | decrypt USER PASS DATA')
    process.exit(2)
  }
} catch (error) {
  console.error(`error: ${error.message}`)
  process.exit(1)
}
