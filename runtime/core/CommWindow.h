//===- CommWindow.h - Collectives in flight on the comm stream --*- C++ -*-===//
//
// Shared by the runtime and forge-plan-memory (which includes nothing else
// of the runtime): the memory plan keeps a collective's buffers live for as
// long as the runtime may still be running it.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_RUNTIME_CORE_COMMWINDOW_H
#define FORGE_RUNTIME_CORE_COMMWINDOW_H

namespace forge::runtime {

/// Collectives in flight at once on the communication stream: issuing
/// collective k + kCommWindow waits for collective k. A collective has
/// surely finished then, at the first kernel that reads its result, or at
/// the end of its program; forge-plan-memory keeps its operands and
/// results live until that point, so the arena never reuses memory a
/// collective still reads or writes.
constexpr unsigned kCommWindow = 2;

} // namespace forge::runtime

#endif // FORGE_RUNTIME_CORE_COMMWINDOW_H
