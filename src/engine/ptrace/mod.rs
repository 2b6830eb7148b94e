//! The ptrace backend: seize, interrupt, detach, registers, syscall injection.
