// What only some kinds of handle have (a listener's admission, a UDP socket's
// state) sits behind one pointer in the loop's table entry, whose kind says
// which record it is: connections, the many, pay 8 bytes for it, not 16.
#pragma once

namespace reactor {

struct KindRecord {
  virtual ~KindRecord() = default;
};

}  // namespace reactor
