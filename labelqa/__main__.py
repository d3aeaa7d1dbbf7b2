from labelqa.cli import main

raise SystemExit(main())
