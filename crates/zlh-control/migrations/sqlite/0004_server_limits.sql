-- What a server may use (JSON: memoryMb, cpus, pids, ioWeight), for drivers that enforce it.
ALTER TABLE servers ADD COLUMN limits TEXT;
