// Seed guide step 2: Express under the cluster module, one worker per CPU
// (os.availableParallelism()), respawned when one dies. PORT and WORKERS from the environment.
'use strict';
const cluster = require('cluster');
const os = require('os');
const { createApp } = require('./express-app');

const port = Number(process.env.PORT || 4400);
const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
const workers = Number(process.env.WORKERS || cpus);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    if (!worker.exitedAfterDisconnect) cluster.fork();
  });
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].kill();
    process.exit(0);
  });
} else {
  createApp().listen(port, '127.0.0.1', () => {
    console.log(`express worker ${process.pid} listening on ${port}`);
  });
}
