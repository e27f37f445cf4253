// offline-directline (npm), the local Direct Line emulator that runs botbuilder bots without Azure, in front of
// the bot of bot.js, on 127.0.0.1: `node directline.js <port> <botUrl>`.
const express = require('express');
const directline = require('offline-directline');

const port = Number(process.argv[2] || 3000);
const botUrl = process.argv[3] || 'http://127.0.0.1:3978/api/messages';
const app = express();
app.use(directline.getRouter(`http://127.0.0.1:${port}`, botUrl));
app.listen(port, '127.0.0.1', () => console.log(`offline-directline on ${port}, bot at ${botUrl}`));
