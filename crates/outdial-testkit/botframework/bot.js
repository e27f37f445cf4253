// A voice bot written with Microsoft's botbuilder v4 SDK, as a Bot Framework developer writes one for outdial
// (docs/bots.md, "Microsoft Bot Framework"). It greets the person by the dialer's participantName, asks a
// yes/no question, and on the answer sets botOperationResult and hangs up. Every activity it receives is kept
// and served at GET /received so the tests can see exactly what outdial sent.
//
//   node bot.js <port>     the bot's messaging endpoint is http://127.0.0.1:<port>/api/messages
const http = require('http');
const { ActivityHandler, ActivityTypes, CloudAdapter, ConfigurationBotFrameworkAuthentication } = require('botbuilder');

const port = Number(process.argv[2] || 3978);
const received = [];

class VoiceBot extends ActivityHandler {
  constructor() {
    super();
    this.onEvent(async (ctx, next) => {
      const a = ctx.activity;
      if (a.name === 'channel' && a.value === 'telephony') {
        const name = ((a.channelData || {}).dialoutMetadata || {}).participantName || 'there';
        await ctx.sendActivity({
          type: ActivityTypes.Message,
          text: `Hello ${name}, this is the Bot Framework bot. Would you like to hear about our new offer?`,
          speak: `<speak>Hello ${name}, this is the Bot Framework bot. Would you like to hear about our new offer?</speak>`,
        });
      }
      await next();
    });
    this.onMessage(async (ctx, next) => {
      const said = (ctx.activity.text || '').toLowerCase();
      const yes = /\b(yes|yeah|sure)\b/.test(said);
      const no = /\b(no|nope)\b/.test(said);
      if (!yes && !no) {
        await ctx.sendActivity({ type: ActivityTypes.Message, text: 'Sorry, please say yes or no.' });
      } else {
        const result = yes ? 'yes' : 'no';
        await ctx.sendActivity({ type: ActivityTypes.Message, text: yes ? 'Great, goodbye.' : 'No problem, goodbye.' });
        await ctx.sendActivity({
          type: ActivityTypes.Event,
          name: 'hangup',
          channelData: { activityParams: { hangupReason: `answered ${result}`, botOperationResult: result,
                                           botOperationData: ctx.activity.text } },
        });
      }
      await next();
    });
  }
}

// No app id: the bot takes anonymous requests, as a local bot does.
const adapter = new CloudAdapter(new ConfigurationBotFrameworkAuthentication({}));
adapter.onTurnError = async (ctx, err) => { console.error('turn error', err); };
const bot = new VoiceBot();

http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/received') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(received));
    return;
  }
  if (req.method !== 'POST' || req.url !== '/api/messages') {
    res.writeHead(404);
    res.end();
    return;
  }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    try { req.body = JSON.parse(body); } catch (e) { res.writeHead(400); res.end(); return; }
    received.push(req.body);
    // CloudAdapter takes restify/express-like request and response objects.
    const response = {
      status(code) { res.statusCode = code; return this; },
      header(k, v) { res.setHeader(k, v); return this; },
      send(b) { if (b !== undefined) { res.end(typeof b === 'string' ? b : JSON.stringify(b)); } else { res.end(); } return this; },
      end() { res.end(); return this; },
      socket: res.socket,
    };
    adapter.process(req, response, (ctx) => bot.run(ctx)).catch((e) => {
      console.error(e);
      if (!res.writableEnded) { res.statusCode = 500; res.end(); }
    });
  });
}).listen(port, '127.0.0.1', () => console.log(`bot listening on ${port}`));
