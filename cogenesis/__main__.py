from cogenesis.cli import main

raise SystemExit(main())
