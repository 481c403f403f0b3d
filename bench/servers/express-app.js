// The seed guide's Express application: the same three routes and bodies as preforkd.
'use strict';
const express = require('express');

function createApp() {
  const app = express();
  app.get('/', (req, res) => {
    let sum = 0;
    for (let i = 0; i < 100000; i++) sum += i;
    res.json({ sum });
  });
  app.get('/health', (req, res) => {
    res.json({
      status: 'healthy',
      worker: process.pid,
      uptime: process.uptime(),
      memory: process.memoryUsage(),
    });
  });
  app.get('/heavy', (req, res) => {
    let sum = 0;
    for (let i = 0; i < 1000000; i++) sum += i;
    res.json({ sum, worker: process.pid });
  });
  return app;
}

module.exports = { createApp };
