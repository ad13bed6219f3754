"""What the user chose and what the machine is like: the config file, ``camroll settings``, the backup
policy, the machine's conditions (battery, power saver, network), the metered-network meter and the
account (login, folders)."""
