// Seed guide step 1: one Express process. PORT from the environment.
'use strict';
const { createApp } = require('./express-app');

const port = Number(process.env.PORT || 4400);
createApp().listen(port, '127.0.0.1', () => {
  console.log(`express single ${process.pid} listening on ${port}`);
});
