"""Home Assistant over MQTT: one device per household with sync on, found through MQTT discovery.

- `messages`: pure. Topics, discovery configs, state payloads and what a command topic means, from plain
  data (no Flask, no database, no broker).
- `household_state`: reads one household's prices, battery, sync and force session into that plain data,
  and acts on a button press as the household (actor "Home Assistant").
- `bridge`: the thin part holding the paho-mqtt connection. Only the process that runs the scheduler (the
  leader) holds one: it publishes after every tick and every control change and hands commands on.
- `cli`: `flask mqtt publish`.

May import the models, the database, control and readings; the scheduler calls the bridge, nothing in the
app imports this package otherwise. An MQTT problem never stops a sync or a force session."""
