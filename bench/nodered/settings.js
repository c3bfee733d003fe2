// Node-RED settings for bench/nodered.py. The bench passes --userDir (a directory inside its
// own work directory, never ~/.node-red); flows.json reads its values from the environment.
module.exports = {
    // Node-RED always starts its HTTP server; nothing here uses it, so any free port will do
    // (0: the kernel's pick, which no other process can take first).
    uiHost: "127.0.0.1",
    uiPort: 0,
    flowFile: "flows.json",
    flowFilePretty: true,
    // No editor and no admin API: the flow is deployed from flows.json and never edited here.
    httpAdminRoot: false,
    // No credentials in this flow; without a secret Node-RED would generate and store one.
    credentialSecret: false,
    // A benchmark machine may have no internet: no update check, no telemetry.
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    logging: { console: { level: "info", metrics: false, audit: false } },
};
