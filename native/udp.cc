// UDP sockets in the loop (udp.h): opening, receiving a batch into the slab
// as kDatagram records, sending at once or in a batch, the bounded queue,
// errors as kDatagramError records, the connected mode and the options.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "loop_core.h"
#include "platform.h"

namespace reactor {
namespace {

// The kernel has no room for the datagram now: EAGAIN from a full send
// buffer, ENOBUFS from a full interface queue (BSD, macOS). It is kept.
bool no_room(int error) { return would_block(error) || error == ENOBUFS; }

// Records' offsets are 8-aligned, so JavaScript reads a source with typed
// arrays over the slab.
constexpr size_t kRecordAlign = 8;
size_t aligned(size_t offset) { return (offset + kRecordAlign - 1) & ~(kRecordAlign - 1); }

}  // namespace

// ---- opening and closing --------------------------------------------------------

int64_t LoopCore::udp_open(const std::string& host, int port, const DatagramOptions& options) {
  if (!datagram_scratch_) {
    datagram_scratch_.reset(new (std::nothrow) DatagramScratch);
    if (!datagram_scratch_ || !datagram_scratch_->memory) {
      datagram_scratch_.reset();
      return -ENOMEM;
    }
  }
  int fd = open_datagram(host, port, options);
  if (fd < 0) return fd;
  SocketAddress local;
  int rc = socket_address(fd, false, &local);
  if (rc < 0) {
    close_socket(fd);
    return rc;
  }
  auto udp = std::unique_ptr<UdpSocket>(new (std::nothrow) UdpSocket);
  Id id;
  Handle* c = udp ? adopt(fd, Kind::kDatagram, State::kOpen, false, &id) : nullptr;
  if (!c) {
    if (!udp) close_socket(fd);  // adopt() closed it otherwise
    return udp ? -EMFILE : -ENOMEM;
  }
  udp->family = local.family;
  c->record = std::move(udp);
  c->reading = true;
  return static_cast<int64_t>(id.packed());
}

int LoopCore::udp_close(uint64_t packed) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  UdpSocket& udp = *c->udp();
  if (!udp.queue.empty()) {
    // What the kernel takes now still goes; nobody is left to hear of the rest.
    int ignored = 0;
    send_datagrams(c->fd, udp.queue.outgoing(), static_cast<int>(udp.queue.size()), &ignored);
  }
  forget(id, c);
  return 0;
}

LoopCore::Handle* LoopCore::find_datagram(uint64_t packed, Id* out) {
  Handle* c = find(packed, out);
  return c && c->kind == Kind::kDatagram ? c : nullptr;
}

// ---- readiness ------------------------------------------------------------------

uint32_t LoopCore::datagram_interest(const Handle& c) const {
  uint32_t interest = c.reading && !c.paused ? kReadable : kNone;
  // A socket is writable at once unless its buffer is full, which is how a
  // failure noted outside a batch gets reported from inside the next one.
  if (c.udp()->blocked || c.udp()->error) interest |= kWritable;
  return interest;
}

void LoopCore::on_datagram_ready(Id id, Handle* c, const PollEvent& event) {
  UdpSocket* udp = c->udp();
  if (udp->error) {
    int error = udp->error;
    udp->error = 0;
    mark_dirty(id, c);
    emit(kDatagramError, id, error, udp->error_operation);
    if (!(c = table_.get(id))) return;  // closed by JavaScript meanwhile
    udp = c->udp();
  }
  if (event.writable && udp->blocked) {
    udp->blocked = false;
    mark_dirty(id, c);
    flush_datagrams(id, c);
  }
  if (c->reading && !c->paused) {
    if (event.readable || event.error) receive_datagrams(id, c);
  } else if (event.error) {
    // Paused: reading the error clears it, or epoll would report it at
    // every wait.
    if (int error = pending_error(c->fd)) emit(kDatagramError, id, error, kUdpReceive);
  }
}

// One batch per wake-up, like one read per connection: a busy socket does
// not starve the others, and what is left keeps it readable.
void LoopCore::receive_datagrams(Id id, Handle* c) {
  DatagramScratch& scratch = *datagram_scratch_;
  int n = scratch.receiver.receive(c->fd, scratch.memory.get(), DatagramScratch::kSize);
  if (n < 0) {
    if (!would_block(-n)) {
      c->udp()->counters.errors++;
      emit(kDatagramError, id, -n, kUdpReceive);
    }
    return;
  }
  int stopped_by = scratch.receiver.stopped_by();
  for (int i = 0; i < n; i++) {
    const ReceivedDatagram& datagram = scratch.receiver.datagram(i);
    size_t at = aligned(slab_used_);
    size_t end = at + sizeof(PackedAddress) + datagram.length;
    if (end > slab_.size || record_count_ == record_capacity_) {
      // Delivered first: what this batch took so far points into this slab.
      if (end > slab_.size) {
        start_new_slab();
      } else {
        deliver();
      }
      if (!(c = find_datagram(id.packed(), &id))) return;  // closed by JavaScript meanwhile
      at = aligned(slab_used_);
      end = at + sizeof(PackedAddress) + datagram.length;
      if (end > slab_.size) {
        // No memory for a slab now: these datagrams are lost.
        c->udp()->counters.errors++;
        emit(kDatagramError, id, ENOMEM, kUdpReceive);
        return;
      }
    }
    std::memcpy(slab_.data + at, &datagram.source, sizeof(PackedAddress));
    std::memcpy(slab_.data + at + sizeof(PackedAddress), scratch.memory.get() + datagram.offset,
                datagram.length);
    slab_used_ = end;
    c->udp()->counters.received++;
    c->udp()->counters.received_bytes += datagram.length;
    stats_.bytes_in += datagram.length;
    emit(kDatagram, id, static_cast<int32_t>(at), static_cast<int32_t>(datagram.length));
  }
  if (stopped_by) {
    c->udp()->counters.errors++;
    emit(kDatagramError, id, -stopped_by, kUdpReceive);
  }
}

// ---- sending ----------------------------------------------------------------------

int LoopCore::udp_send(uint64_t packed, const void* data, size_t length, const std::string& host,
                       int port, bool batch) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  UdpSocket& udp = *c->udp();
  const Endpoint* to = nullptr;
  if (!host.empty()) {
    if (host != udp.last_host) {
      Endpoint parsed;
      int rc = datagram_endpoint(udp.family, host, port, &parsed);
      if (rc < 0) return rc;
      udp.last_to = parsed;
      udp.last_host = host;
    } else if (port < 0 || port > 65535) {
      return -EINVAL;
    } else {
      set_port(&udp.last_to, port);
    }
    to = &udp.last_to;
  } else if (!udp.connected) {
    return -EDESTADDRREQ;
  }
  if (batch || !udp.queue.empty()) {
    // A full batch goes now, so a batch never drops for want of room; a
    // queue that waits for the kernel does.
    if (!udp.queue.fits(length) && !udp.blocked) flush_datagrams(id, c);
    if (!udp.queue.fits(length)) {
      udp.counters.dropped++;
      return kUdpDropped;
    }
    udp.queue.push(data, length, to);
    mark_dirty(id, c);  // flushed before the loop waits, or once writable
    return kUdpQueued;
  }
  ssize_t n = send_datagram(c->fd, data, length, to);
  if (n >= 0) {
    udp.counters.sent++;
    udp.counters.sent_bytes += length;
    stats_.bytes_out += length;
    return kUdpSent;
  }
  int error = static_cast<int>(-n);
  if (no_room(error)) {
    udp.queue.push(data, length, to);
    udp.blocked = true;
    mark_dirty(id, c);
    return kUdpQueued;
  }
  datagram_failed(id, c, error, kUdpSend);
  return kUdpFailed;
}

void LoopCore::flush_datagrams(Id id, Handle* c) {
  UdpSocket& udp = *c->udp();
  while (!udp.queue.empty()) {
    int stopped_by = 0;
    int count = static_cast<int>(udp.queue.size());
    int sent = send_datagrams(c->fd, udp.queue.outgoing(), count, &stopped_by);
    size_t bytes = udp.queue.bytes_of(static_cast<size_t>(sent));
    udp.counters.sent += static_cast<uint64_t>(sent);
    udp.counters.sent_bytes += bytes;
    stats_.bytes_out += bytes;
    udp.queue.pop_front(static_cast<size_t>(sent));
    if (sent == count) return;
    if (no_room(-stopped_by)) {
      udp.blocked = true;
      mark_dirty(id, c);
      return;
    }
    // That datagram failed (its own error, or an earlier refusal the kernel
    // reports now): it is reported and the ones after it still go.
    datagram_failed(id, c, -stopped_by, kUdpSend);
    udp.queue.pop_front(1);
  }
}

void LoopCore::datagram_failed(Id id, Handle* c, int error, UdpOperation operation) {
  UdpSocket& udp = *c->udp();
  udp.counters.errors++;
  // One report waits at a time; later failures before it goes out are counted only.
  if (udp.error) return;
  udp.error = error;
  udp.error_operation = operation;
  mark_dirty(id, c);
}

// ---- the connected mode, reading and options -------------------------------------------

int LoopCore::udp_connect(uint64_t packed, const std::string& host, int port) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  Endpoint to;
  int rc = datagram_endpoint(c->udp()->family, host, port, &to);
  if (rc < 0) return rc;
  if ((rc = connect_datagram(c->fd, to)) < 0) return rc;
  c->udp()->connected = true;
  return 0;
}

int LoopCore::udp_disconnect(uint64_t packed) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  if (!c->udp()->connected) return -ENOTCONN;
  int rc = disconnect_datagram(c->fd);
  if (rc < 0) return rc;
  c->udp()->connected = false;
  return 0;
}

int LoopCore::udp_set_reading(uint64_t packed, bool reading) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  c->paused = !reading;
  mark_dirty(id, c);
  return 0;
}

int LoopCore::udp_set_option(uint64_t packed, UdpOption option, int value) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  switch (option) {
    case UdpOption::kBroadcast:
      return set_broadcast(c->fd, value != 0);
    case UdpOption::kTtl:
      return set_ttl(c->fd, value);
    case UdpOption::kMulticastTtl:
      return set_multicast_ttl(c->fd, value);
    case UdpOption::kMulticastLoopback:
      return set_multicast_loopback(c->fd, value != 0);
  }
  return -EINVAL;
}

int LoopCore::udp_set_multicast_interface(uint64_t packed, const std::string& interface_address) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  return c ? set_multicast_interface(c->fd, interface_address) : -EBADF;
}

int LoopCore::udp_set_membership(uint64_t packed, const std::string& source,
                                 const std::string& group, const std::string& interface_address,
                                 bool join) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  return source.empty() ? set_membership(c->fd, group, interface_address, join)
                        : set_source_membership(c->fd, source, group, interface_address, join);
}

int LoopCore::udp_counters(uint64_t packed, UdpCounters* out) {
  Id id;
  Handle* c = find_datagram(packed, &id);
  if (!c) return -EBADF;
  *out = c->udp()->counters;
  return 0;
}

// ---- UdpSockets: the public face --------------------------------------------------

UdpSockets Loop::udp() { return UdpSockets(core_.get()); }

int64_t UdpSockets::open(const std::string& host, int port, const DatagramOptions& options) {
  return core_->udp_open(host, port, options);
}
int UdpSockets::send(uint64_t id, const void* data, size_t length, const std::string& host,
                     int port, bool batch) {
  return core_->udp_send(id, data, length, host, port, batch);
}
int UdpSockets::connect(uint64_t id, const std::string& host, int port) {
  return core_->udp_connect(id, host, port);
}
int UdpSockets::disconnect(uint64_t id) { return core_->udp_disconnect(id); }
int UdpSockets::set_reading(uint64_t id, bool reading) {
  return core_->udp_set_reading(id, reading);
}
int UdpSockets::set_option(uint64_t id, UdpOption option, int value) {
  return core_->udp_set_option(id, option, value);
}
int UdpSockets::set_multicast_interface(uint64_t id, const std::string& interface_address) {
  return core_->udp_set_multicast_interface(id, interface_address);
}
int UdpSockets::set_membership(uint64_t id, const std::string& group,
                               const std::string& interface_address, bool join) {
  return core_->udp_set_membership(id, std::string(), group, interface_address, join);
}
int UdpSockets::set_source_membership(uint64_t id, const std::string& source,
                                      const std::string& group,
                                      const std::string& interface_address, bool join) {
  return core_->udp_set_membership(id, source, group, interface_address, join);
}
int UdpSockets::counters(uint64_t id, UdpCounters* out) { return core_->udp_counters(id, out); }
int UdpSockets::close(uint64_t id) { return core_->udp_close(id); }

}  // namespace reactor
