// demo/index.html, the chat page, driven through its controls: streamed greedy output equals
// Node's, a bad model file shows its EngineError code, and Stop cancels a load. Each export takes the runner's `t`.

export async function chatPageStreamsTheGreedyTokensOfNode(t) {
  const fx = t.fixtures['qwen2-f32'];
  const page = await t.page('index.html');
  await page.fill('#url', fx.url);
  await page.fill('#prompt', t.prompt);
  await page.fill('#max-tokens', '16');
  await page.fill('#temperature', '0');
  // Record every length the output text takes while it streams.
  await page.evaluate(() => {
    const out = document.querySelector('#output');
    window.__outputLengths = [];
    new MutationObserver(() => window.__outputLengths.push(out.textContent.length)).observe(out, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#generate');
  await page.waitForFunction(() => document.body.dataset.state === 'idle' && document.querySelector('#output')?.dataset.tokens, null, {
    timeout: 60_000,
  });
  t.assert.equal(await page.textContent('#error'), '');
  const tokens = JSON.parse((await page.getAttribute('#output', 'data-tokens')) ?? '[]');
  t.assert.deepEqual(tokens, fx.expected.tokens.slice(0, 16));
  t.assert.match((await page.textContent('#stats')) ?? '', new RegExp(`${tokens.length} tokens \\((length|stop)\\).*tok/s`));
  // Streamed, not delivered at the end: the text grew through several non-empty lengths.
  const lengths = new Set((await page.evaluate(() => window.__outputLengths)).filter((n) => n > 0));
  t.assert.ok(lengths.size >= 3, `output grew in ${lengths.size} steps: ${[...lengths].join(', ')}`);
  t.assert.match((await page.textContent('#adapter')) ?? '', /GPU: /);
}

export async function chatPageShowsBadModelFileErrors(t) {
  const page = await t.page('index.html');
  await page.fill('#url', t.badModelUrl);
  await page.click('#load');
  await page.waitForFunction(() => (document.querySelector('#error')?.textContent ?? '').length > 0, null, { timeout: 30_000 });
  t.assert.match((await page.textContent('#error')) ?? '', /^BAD_MODEL_FILE: Malformed GGUF file/);
  t.assert.equal(await page.evaluate(() => document.body.dataset.state), 'idle');
}

export async function chatPageSpeculativeSelfDraftGivesThePlainGreedyTokens(t) {
  // The bundled 4-block model (Vite serves it by path here): a self-draft of 2 blocks with SpecHub trees.
  const page = await t.page('index.html');
  await page.fill('#url', `/@fs${t.repo}/demo/models/hearth-tiny.gguf`);
  await page.fill('#prompt', t.prompt);
  await page.fill('#max-tokens', '12');
  await page.fill('#temperature', '0');
  const run = async () => {
    await page.evaluate(() => delete document.querySelector('#output').dataset.tokens);
    await page.click('#generate');
    // Done: tokens, or an error shown.
    await page.waitForFunction(
      () => document.body.dataset.state === 'idle' && (document.querySelector('#output')?.dataset.tokens || document.querySelector('#error')?.textContent),
      null,
      { timeout: 90_000 },
    );
    t.assert.equal(await page.textContent('#error'), '');
    return { tokens: JSON.parse((await page.getAttribute('#output', 'data-tokens')) ?? '[]'), stats: (await page.textContent('#stats')) ?? '' };
  };
  const plain = await run();
  await page.selectOption('#speculative', { index: 3 });
  const spec = await run();
  t.assert.deepEqual(spec.tokens, plain.tokens, 'speculative greedy output equals plain greedy output');
  t.assert.doesNotMatch(plain.stats, /speculative/);
  t.assert.match(spec.stats, /speculative: \d+ of \d+ drafted tokens accepted, [\d.]+ tokens per pass/);
  t.log(spec.stats);
}

export async function chatPageStopCancelsALoadAndTheNextLoadWorks(t) {
  const fx = t.fixtures['llama-f32'];
  const page = await t.page('index.html');
  // Hold the model's response until Stop has been pressed, so the load is surely still running.
  let release;
  const held = new Promise((r) => (release = r));
  let holding = true;
  await page.route(`**${fx.url}`, async (route) => {
    if (holding) await held;
    await route.continue().catch(() => undefined);
  });
  await page.fill('#url', fx.url);
  await page.click('#load');
  await page.waitForFunction(() => document.body.dataset.state === 'loading');
  t.assert.equal(await page.isDisabled('#stop'), false, 'Stop is live while a model loads');
  await page.click('#stop');
  await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 30_000 });
  holding = false;
  release();
  t.assert.match((await page.textContent('#error')) ?? '', /^ABORTED: /);
  t.assert.equal(await page.textContent('#model-status'), 'no model loaded');
  await page.click('#load');
  await page.waitForFunction(() => document.body.dataset.state === 'idle' && /layers/.test(document.querySelector('#model-status')?.textContent ?? ''), null, {
    timeout: 30_000,
  });
  t.assert.equal(await page.textContent('#error'), '');
}

export async function chatPageHoldsAMultiTurnChatWhoseLaterTurnsReuseTheEarlierKv(t) {
  const page = await t.page('index.html');
  await page.fill('#url', `/@fs${t.repo}/demo/models/hearth-tiny.gguf`);
  await page.fill('#max-tokens', '10');
  await page.fill('#temperature', '0');
  await page.evaluate(() => {
    const conv = document.querySelector('#conversation');
    window.__replyLengths = [];
    new MutationObserver(() => {
      const last = [...conv.querySelectorAll('.msg.assistant')].at(-1);
      if (last) window.__replyLengths.push(last.textContent.length);
    }).observe(conv, { childList: true, characterData: true, subtree: true });
  });
  const turn = async (text) => {
    await page.fill('#prompt', text);
    await page.click('#send');
    await page.waitForFunction(
      () => document.body.dataset.state === 'idle' && (document.querySelector('#stats')?.textContent || document.querySelector('#error')?.textContent),
      null,
      {
        timeout: 90_000,
      },
    );
    t.assert.equal(await page.textContent('#error'), '');
    return (await page.textContent('#stats')) ?? '';
  };
  const first = await turn('Once upon a time');
  const second = await turn('What happened next?');
  const bubbles = await page.$$eval('#conversation .msg', (els) => els.map((e) => ({ role: e.className.replace('msg ', ''), text: e.textContent })));
  t.assert.deepEqual(
    bubbles.map((b) => b.role),
    ['user', 'assistant', 'user', 'assistant'],
  );
  t.assert.equal(bubbles[0].text, 'Once upon a time');
  t.assert.ok(bubbles[1].text.length > 0 && bubbles[3].text.length > 0, 'both replies have text');
  t.assert.equal(await page.inputValue('#prompt'), '', 'the sent message left the prompt box');
  // The reply streamed: it grew through several lengths.
  t.assert.ok(new Set((await page.evaluate(() => window.__replyLengths)).filter((n) => n > 0)).size >= 3, 'the replies streamed');
  const cached = (s) => Number(/(\d+) of them cached/.exec(s)?.[1] ?? NaN);
  t.assert.equal(cached(first), 0, first);
  // The second turn's prompt repeats the first turn (its message and reply): that KV is reused.
  t.assert.ok(cached(second) > 0, second);
  t.log(`first turn: ${first}`);
  t.log(`second turn: ${second}`);
  await page.click('#new-chat');
  t.assert.equal(await page.$$eval('#conversation .msg', (els) => els.length), 0);
}
