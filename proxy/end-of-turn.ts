// "At the end of this event-loop turn", for many waiters at once: one setImmediate per turn (it
// runs after the poll phase has delivered every read of the turn), no timer or closure per
// waiter. A connected backend's PROXY header waits here for the client's first bytes.

export interface TurnWaiter {
  turnEnded(): void;
}

const waiting: TurnWaiter[] = [];
let scheduled = false;

export function awaitEndOfTurn(waiter: TurnWaiter): void {
  waiting.push(waiter);
  if (scheduled) return;
  scheduled = true;
  setImmediate(endTurn);
}

function endTurn(): void {
  scheduled = false;
  // A waiter added while this runs is ended in this pass too.
  for (let i = 0; i < waiting.length; i++) waiting[i]!.turnEnded();
  waiting.length = 0;
}
