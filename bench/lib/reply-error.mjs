// A reply stream beyond repair (garbage, an oversized or unframed header):
// the connection that carried it must go. `kind` is the error kind counted.
export class ReplyError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}
