// What the harness measures. Echo: N connections ping-pong S-byte messages
// with P in flight each. Idle: N connections held open (RSS per connection).
// Churn: connect, one round trip, close, K at a time.
export function scenarios(quick) {
  const many = quick ? 1000 : 10000;
  return [
    { name: 'echo-100x64', kind: 'echo', conns: 100, size: 64, pipeline: 1 },
    { name: `echo-${many / 1000}kx64`, kind: 'echo', conns: many, size: 64, pipeline: 1 },
    { name: 'echo-50x16k', kind: 'echo', conns: 50, size: 16384, pipeline: 1 },
    { name: 'echo-100x64-p8', kind: 'echo', conns: 100, size: 64, pipeline: 8 },
    { name: `idle-${many / 1000}k`, kind: 'idle', conns: many, rounds: 1 },
    { name: 'churn-50', kind: 'churn', conns: 50, size: 64 },
  ];
}

export const scenarioNames = (quick) => scenarios(quick).map((s) => s.name);
