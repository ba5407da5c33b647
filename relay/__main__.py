from relay.cli.parser import main

raise SystemExit(main())
